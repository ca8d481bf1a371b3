"""Built-in plugin folders (data, plus trusted native plugins).

Loaded by kernel_app.kernel.plugin_folders, not imported.
"""
