"""Where data lives besides local files: object storage (engine.storage.objects), databases
(engine.storage.postgresql), and the plug-in interface every source and sink implements
(engine.storage.plugins)."""
