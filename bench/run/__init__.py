"""Running a comparison: the configuration, Locust per mode, live progress, injected faults, the result table."""
