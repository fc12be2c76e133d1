"""The `abrlab` command line: entry point, commands, the dashboard, browser interop."""
