from graph_webhook.models import WebhookBase
from shared.migrations import run_env

run_env(WebhookBase.metadata)
