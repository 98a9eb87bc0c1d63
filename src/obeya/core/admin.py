from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from obeya.core.models import ApiToken, Event, User

admin.site.register(User, UserAdmin)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "scope", "expires_at", "revoked_at")
    readonly_fields = ("token_hash",)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_name", "kind", "subject", "service")
    list_filter = ("kind",)

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
