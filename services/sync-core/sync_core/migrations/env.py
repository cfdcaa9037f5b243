from sync_core.models import SyncBase

from shared.migrations import run_env

run_env(SyncBase.metadata)
