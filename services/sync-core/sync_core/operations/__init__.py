"""What an operator can do, once: the ops API, the admin console and `syncctl` all go through here.

Each module is one use case (users, journal, force sync, test connection, imports, queues,
subscriptions); every action writes an audit line in the journal naming who did it.
"""
