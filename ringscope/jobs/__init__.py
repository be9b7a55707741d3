"""Jobs: the periodic rebuild and its scheduler. They drive the domain layers and never import
the API."""
