"""The instruction templates (`<task>.yaml`), installed as `genie.prompt_templates` so genie finds
them the same way from a source checkout, an editable install and a wheel."""
