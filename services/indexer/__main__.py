from datatorag.entrypoints.serve import run

if __name__ == "__main__":
    run("indexer")
