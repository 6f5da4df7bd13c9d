"""The actor tree: supervised Trio tasks that own state and talk over bounded memory channels.

- :mod:`webmacs.actors.supervisor`: runs child actors with a restart policy.
"""
