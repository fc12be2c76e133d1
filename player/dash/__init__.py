"""The DASH client's knowledge: manifests (model, XML safety, addressing, builder, loading), the playback plan, DRM."""
