"""The command line: main.py (commands, exit codes), render.py (output, no logic)."""
