"""Numbers from stored predictions: metrics and calibration, statistics over seeds, and the
multi-seed report of one experiment."""
