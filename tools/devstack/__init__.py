"""`make run`: the whole system on its defaults, with a short visible demo."""
