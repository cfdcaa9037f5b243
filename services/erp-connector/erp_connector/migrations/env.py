from erp_connector.models import ErpBase
from shared.migrations import run_env

run_env(ErpBase.metadata)
