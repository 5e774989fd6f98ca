// Licensed under the MIT License. See LICENSE in the repository root.
System.Console.WriteLine("stub");
