from django.urls import include, path

urlpatterns = [
    path("hooks/llm-batch/", include("llm_batch_client.django.urls")),  # the webhook: hooks/llm-batch/webhook/
]
