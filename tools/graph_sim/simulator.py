"""The simulator's state: one instance per app (`app.state.sim`), nothing module-global."""

from __future__ import annotations

from graph_sim import batch, contacts, delta, events, subscriptions, todo, users
from graph_sim.auth import Auth
from graph_sim.clock import SimClock
from graph_sim.config import SimConfig
from graph_sim.faults import Faults
from graph_sim.notifier import Notifier
from graph_sim.routing import Router
from graph_sim.stats import Stats
from graph_sim.store import Store
from graph_sim.subscriptions import Subscriptions


class Simulator:
    """Store, auth, faults, subscriptions and notifier of one simulated tenant."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.clock = SimClock()
        self.auth = Auth(config)
        self.faults = Faults(self.clock, throttling=config.throttling)
        self.stats = Stats()
        self.store = Store(self.clock)
        self.notifier = Notifier(self)
        self.subscriptions = Subscriptions(self)
        self.store.listeners.append(self.subscriptions.on_change)
        self.router = Router()
        # delta routes first: `/contacts/delta` must win over `/contacts/{id}`
        for register in (
            delta.register,
            contacts.register_delta,
            todo.register_delta,
            users.register,
            events.register,
            contacts.register,
            todo.register,
            subscriptions.register,
            batch.register,
        ):
            register(self, self.router)

    def reset(self) -> None:
        """Forget users, items, subscriptions, faults, stats; keep registered apps and routes."""
        self.clock.reset()
        self.auth.reset()
        self.store = Store(self.clock)
        self.store.listeners.append(self.subscriptions.on_change)
        self.subscriptions.reset()
        self.notifier.reset()
        self.faults.reset()
        self.stats = Stats()
