from django.apps import AppConfig


class BoardConfig(AppConfig):
    name = "obeya.board"
    label = "board"
    verbose_name = "Board"

    def ready(self) -> None:
        from obeya.backlog import services as backlog
        from obeya.board import flow_store
        from obeya.web import context
        from obeya.web.templatetags import obeya_tags

        if flow_store.fold_story_event not in backlog.STORY_EVENT_LISTENERS:
            backlog.STORY_EVENT_LISTENERS.append(flow_store.fold_story_event)
        obeya_tags.register_describer(
            "story.positioned",
            lambda d: f"put {d.get('key')} at place {d.get('position')} in “{d.get('column')}”",
        )

        suffixes = [tab.suffix for tab in context.SERVICE_TABS]
        if "board/" not in suffixes:
            # Right after the backlog its cards come from.
            position = suffixes.index("backlog/") + 1 if "backlog/" in suffixes else len(suffixes)
            context.SERVICE_TABS.insert(position, context.ServiceTab("Board", "board/"))
