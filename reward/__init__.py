"""Image metrics, scene-graph matching, presets and batched LPIPS. Never imports bpy."""
