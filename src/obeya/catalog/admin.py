from django.contrib import admin

from obeya.catalog.models import Membership, Service


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "stage", "owner_team")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("service", "user", "role")
