"""The offload-bench CLI: starts the stack, runs Locust per mode, collects, calls analysis. Owns processes."""
