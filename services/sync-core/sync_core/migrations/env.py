from shared.migrations import run_env
from sync_core.models import SyncBase

run_env(SyncBase.metadata)
