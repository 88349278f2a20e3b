from libs.serve import run

if __name__ == "__main__":
    run("connector")
