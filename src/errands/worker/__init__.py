"""Running jobs: child processes (executor, child), the worker loop, run-job's one-shot runner, maintenance."""
