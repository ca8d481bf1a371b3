"""Built-in plugin folders (data, plus trusted native plugins); loaded by kernel_app.plugin_folders, not imported."""
