from django.apps import AppConfig


class DeployConfig(AppConfig):
    name = "obeya.deploy"
    label = "deploy"
    verbose_name = "Deployments"

    def ready(self) -> None:
        from obeya.deploy import services
        from obeya.pipelines import services as pipelines

        # Deploy jobs of obeya.yml become deployments here (pipelines knows no deploy app).
        if services.dispatch_job not in pipelines.DEPLOY_DISPATCHERS:
            pipelines.DEPLOY_DISPATCHERS.append(services.dispatch_job)
        if services.on_job_canceled not in pipelines.DEPLOY_CANCELED:
            pipelines.DEPLOY_CANCELED.append(services.on_job_canceled)
