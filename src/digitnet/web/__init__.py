"""The local draw-a-digit page: a Flask application and the static files it serves."""
