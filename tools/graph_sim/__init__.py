"""Microsoft Graph simulator: the subset of Graph the product uses, served over HTTPS."""
