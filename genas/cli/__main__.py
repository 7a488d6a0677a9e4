from genas.cli import main

main()
