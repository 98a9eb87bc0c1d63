from django.urls import path

from obeya.board import views

urlpatterns = [
    path("services/<slug:slug>/board/", views.board_page, name="board"),
    path("services/<slug:slug>/board/<str:key>/move/", views.card_move, name="card-move"),
    path("services/<slug:slug>/board/<str:key>/check/", views.card_check, name="card-check"),
]
