"""``webmacs simulate``: demo controllers, and the reference client of the controller protocol."""
