"""`python -m digit_recognizer`: see main.py."""

from digit_recognizer.main import main

main()
