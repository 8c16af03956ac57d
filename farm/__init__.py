"""Outside Blender: supervisor, broker, worker launcher, batch jobs. Never imports bpy."""
