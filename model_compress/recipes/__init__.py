"""One module per algorithm: its flags, typed settings, defaults and the run, from the entry scripts'
command lines to the library (data, modeling, distill, training)."""
