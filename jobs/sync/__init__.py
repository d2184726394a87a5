"""The data path of a DataZen job: spec → read → pipeline → detect → change log → write."""
