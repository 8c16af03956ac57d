"""Wire protocol: message types, codec, Client, Gymnasium env, trainer adapters."""
