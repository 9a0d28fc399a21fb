"""What protects the user's files and machine: atomic writes (:mod:`.atomic`), the output-folder rules
(:mod:`.outputs`: outputs apart from inputs, never replace a file dualseg did not write), the run-directory lock
(:mod:`.lock`) and the size limits of untrusted input (:mod:`.limits`)."""
