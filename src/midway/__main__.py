from midway.cli import main

main()
