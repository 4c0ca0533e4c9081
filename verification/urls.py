from django.urls import path

from verification import views

urlpatterns = [
    path("enroll/", views.enroll, name="enroll"),
    path("verify/", views.verify, name="verify"),
    path("history/", views.history, name="history"),
]
