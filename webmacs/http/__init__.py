"""The Quart-Trio application: thin routes that parse, authorise, call storage or actors, answer."""
