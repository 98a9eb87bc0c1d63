from django.apps import AppConfig


class BoardConfig(AppConfig):
    name = "obeya.board"
    label = "board"
    verbose_name = "Board"
