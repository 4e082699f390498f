"""The SanaWM world model: camera geometry, data readers, and (as they land) VAE, DiT, generator."""
