"""What an RL loop uses on top of the protocol: the Gymnasium env, the prompts and cheat
sheet, the trainer adapters and the task datasets. Installs without bpy (CPython 3.10+)."""
