"""The agent-script sandbox (in-process layer; the OS layer is the disposable worker).

One concern per module: ``policy`` (parse, check and rewrite: ``rewrite``,
``rewrite_exprs``; the name rules: ``names``),
``guards`` (the runtime guard functions, builtins, imports), ``limits`` (deadline, ticks,
size-checked arithmetic), ``base``/``proxy``/``objects`` (the allowlisted ``bpy``),
``geometry`` (vertex budgets), ``dsl`` (the CLEVR DSL), ``session`` (one request's
state), ``integrity`` (post-script checks), ``runner`` (one script -> one outcome) and
``errors`` (outcome names, abort exceptions). Nothing is imported here so that
``policy``/``limits`` stay usable without Blender.
"""
