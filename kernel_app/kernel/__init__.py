"""The kernel: semantic-kernel wired from settings (plugins, filters, model service), and running functions."""
