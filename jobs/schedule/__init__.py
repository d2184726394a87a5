"""When jobs run: Quartz cron schedules, the scheduler, triggers after a run."""
