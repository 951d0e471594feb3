"""Self-OSS-Instruct: building the prompts of the generation stages and parsing what the model
wrote, as pure functions (`prompts`, `parse`). The words and examples are data files in
`builder/prompts/`."""
