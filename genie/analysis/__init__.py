"""Looking at results: each post's errors (`error_analysis`), the HTML report (`report`) and
training curves (`plot`)."""
