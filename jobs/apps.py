from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs and connections"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use the models, which exist only once
        # Django has loaded the apps. This is where the runner learns what each kind of run is.
        from jobs import runner
        from jobs.flows.execute import run_flow
        from jobs.schedule.triggers import fire_after
        from jobs.sync.run import run_reader, run_writer

        runner.register_work("reader", run_reader)
        runner.register_work("writer", run_writer)
        runner.register_work("flow", run_flow)
        runner.after_finish(fire_after)
