"""Everything that runs inside Blender and imports bpy."""
