from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AnomalyConfig(AppConfig):
    name = "apps.anomaly"
    label = "anomaly"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.anomaly.models import AnomalyRule
        from apps.anomaly.selectors import RULES_CACHE, forget_any_rule_enabled

        # Evaluation skips the anomaly pass on a cached "no rule enabled"; any change of a rule forgets it.
        post_save.connect(forget_any_rule_enabled, sender=AnomalyRule, dispatch_uid="anomaly-rule-saved")
        post_delete.connect(forget_any_rule_enabled, sender=AnomalyRule, dispatch_uid="anomaly-rule-deleted")
        # Evaluation caches the sensors' effective rules per process; any change of a rule drops them all.
        post_save.connect(RULES_CACHE.changed, sender=AnomalyRule, dispatch_uid="anomaly-rules-cache-saved")
        post_delete.connect(RULES_CACHE.changed, sender=AnomalyRule, dispatch_uid="anomaly-rules-cache-deleted")
