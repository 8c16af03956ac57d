"""The agent-script sandbox: RestrictedPython policy, bpy capability proxy, CLEVR DSL, limits."""
