from django.urls import include, path
from llm_batch_client.django.views import webhook

urlpatterns = [
    path("hooks/llm-batch/", include("llm_batch_client.django.urls")),  # the webhook: hooks/llm-batch/webhook/
    path("hooks/llm-batch", webhook),  # the address of the first version: batches still in flight carry it
]
