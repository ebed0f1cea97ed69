# The entmoot_ops pytest plugin (entry point) does the work; this file only registers the remediations.
import remediations  # noqa: F401
