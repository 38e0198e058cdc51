"""What runs beside the platform, never inside a task: the demo, the benchmarks, the reliability suite
and the Celery stack launcher. Tools import the product (`include`); the product never imports them."""
